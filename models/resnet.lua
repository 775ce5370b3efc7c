-- models/resnet.lua - the name scripts and tools require ("models.resnet"): sgdsa.models.resnet.
return require "sgdsa.models.resnet"
