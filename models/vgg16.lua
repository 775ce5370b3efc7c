-- models/vgg16.lua - the name scripts and tools require ("models.vgg16"): sgdsa.models.vgg16.
return require "sgdsa.models.vgg16"
