-- models/resnet18.lua - the name scripts and tools require ("models.resnet18"): sgdsa.models.resnet18.
return require "sgdsa.models.resnet18"
