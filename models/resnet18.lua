-- models/resnet18.lua - CIFAR ResNet-18: BasicBlocks [2, 2, 2, 2] (see models/resnet.lua).
--   require("models.resnet18"){channels = 3, size = 32, classes = 10, width = 1}
return require("models.resnet")({2, 2, 2, 2}, "resnet18")
