-- models/resnet34.lua - the name scripts and tools require ("models.resnet34"): sgdsa.models.resnet34.
return require "sgdsa.models.resnet34"
