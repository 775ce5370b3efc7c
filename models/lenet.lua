-- models/lenet.lua - the name scripts and tools require ("models.lenet"): sgdsa.models.lenet.
return require "sgdsa.models.lenet"
