-- sgdsa.models.resnet18 - CIFAR ResNet-18: BasicBlocks [2, 2, 2, 2] (see sgdsa.models.resnet).
--   sgdsa.models.resnet18{channels = 3, size = 32, classes = 10, width = 1}
return require("sgdsa.models.resnet")({2, 2, 2, 2}, "resnet18")
