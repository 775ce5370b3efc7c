-- models/mlp.lua - the name scripts and tools require ("models.mlp"): sgdsa.models.mlp.
return require "sgdsa.models.mlp"
