-- sgdsa.models.resnet34 - CIFAR ResNet-34: BasicBlocks [3, 4, 6, 3] (see sgdsa.models.resnet).
--   sgdsa.models.resnet34{channels = 3, size = 32, classes = 10, width = 1}
return require("sgdsa.models.resnet")({3, 4, 6, 3}, "resnet34")
