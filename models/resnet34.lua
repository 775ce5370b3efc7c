-- models/resnet34.lua - CIFAR ResNet-34: BasicBlocks [3, 4, 6, 3] (see models/resnet.lua).
--   require("models.resnet34"){channels = 3, size = 32, classes = 10, width = 1}
return require("models.resnet")({3, 4, 6, 3}, "resnet34")
