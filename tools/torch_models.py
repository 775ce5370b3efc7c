"""torch_models - PyTorch mirrors of sgdsa's models/*.lua (same structure,
same state-dict names, kuangliu pytorch-cifar style), used by
tools/make-model-fixtures and tools/bench_torch.py.

    build(name, channels, size, classes, width=1) -> torch.nn.Module
"""
import torch.nn as tnn
import torch.nn.functional as F


class MLP(tnn.Module):
    def __init__(self, c, s, classes, w, hidden=(512, 256)):
        super().__init__()
        nin = c * s * s
        self.n = len(hidden) + 1
        for i, h in enumerate(hidden):
            h = ch(h, w)
            setattr(self, "fc%d" % (i + 1), tnn.Linear(nin, h))
            nin = h
        setattr(self, "fc%d" % self.n, tnn.Linear(nin, classes))

    def forward(self, x):
        x = x.flatten(1)
        for i in range(1, self.n):
            x = F.relu(getattr(self, "fc%d" % i)(x), inplace=True)
        return getattr(self, "fc%d" % self.n)(x)


def ch(n, w):
    return max(1, int(n * w))


class LeNet(tnn.Module):
    def __init__(self, c, s, classes, w):
        super().__init__()
        pad = (32 - s) // 2 if s < 32 else 0
        c1, c2, f1, f2 = ch(6, w), ch(16, w), ch(120, w), ch(84, w)
        s1 = (s + 2 * pad - 4) // 2
        s2 = (s1 - 4) // 2
        self.conv1 = tnn.Conv2d(c, c1, 5, padding=pad)
        self.bn1 = tnn.BatchNorm2d(c1)
        self.conv2 = tnn.Conv2d(c1, c2, 5)
        self.bn2 = tnn.BatchNorm2d(c2)
        self.fc1 = tnn.Linear(c2 * s2 * s2, f1)
        self.bn3 = tnn.BatchNorm1d(f1)
        self.fc2 = tnn.Linear(f1, f2)
        self.bn4 = tnn.BatchNorm1d(f2)
        self.fc3 = tnn.Linear(f2, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = x.flatten(1)
        x = F.relu(self.bn3(self.fc1(x)))
        x = F.relu(self.bn4(self.fc2(x)))
        return self.fc3(x)


class VGG16(tnn.Module):
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]

    def __init__(self, c, s, classes, w):
        super().__init__()
        layers, cin = [], c
        for v in self.cfg:
            if v == "M":
                layers.append(tnn.MaxPool2d(2, 2))
            else:
                cout = ch(v, w)
                layers += [tnn.Conv2d(cin, cout, 3, padding=1), tnn.BatchNorm2d(cout), tnn.ReLU(True)]
                cin = cout
        self.pad = (32 - s) // 2 if s < 32 else 0
        self.features = tnn.Sequential(*layers)
        side = max(s, 32) // 32
        self.classifier = tnn.Linear(cin * side * side, classes)

    def forward(self, x):
        if self.pad:
            x = F.pad(x, (self.pad,) * 4)
        return self.classifier(self.features(x).flatten(1))


class BasicBlock(tnn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.shortcut = tnn.Sequential()
        if stride != 1 or cin != planes:
            self.shortcut = tnn.Sequential(tnn.Conv2d(cin, planes, 1, stride, bias=False),
                                           tnn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(tnn.Module):
    def __init__(self, blocks, c, s, classes, w):
        super().__init__()
        self.conv1 = tnn.Conv2d(c, ch(64, w), 3, 1, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(ch(64, w))
        cin = ch(64, w)
        for l, nb in enumerate(blocks):
            planes = ch(64 * 2 ** l, w)
            layer = []
            for b in range(nb):
                layer.append(BasicBlock(cin, planes, 2 if (b == 0 and l > 0) else 1))
                cin = planes
            setattr(self, "layer%d" % (l + 1), tnn.Sequential(*layer))
        self.linear = tnn.Linear(cin, classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        for l in range(1, 5):
            out = getattr(self, "layer%d" % l)(out)
        return self.linear(out.mean((2, 3)))


def build(model, c, s, classes, w=1):
    if model == "mlp":
        return MLP(c, s, classes, w)
    if model == "lenet":
        return LeNet(c, s, classes, w)
    if model == "vgg16":
        return VGG16(c, s, classes, w)
    if model == "resnet18":
        return ResNet([2, 2, 2, 2], c, s, classes, w)
    if model == "resnet34":
        return ResNet([3, 4, 6, 3], c, s, classes, w)
    raise ValueError(model)


