"""A user's own network and preprocessing in Python, trained online on the CIFAR-10 stream.

The network is a torch.nn.Module of this file (a small residual CNN with batch norm); the
preprocessing is a python_map: the raw images (x/255, no normalisation) are standardised per
image and randomly flipped, in numpy, before the model sees them. The test set goes through
the same map (without flips) to the model's evaluate input. After the run the trained weights
are back in the module, which is then evaluated in plain PyTorch.

    PYTHONPATH=build/python /usr/bin/python3 examples/python/custom_model.py [--images N]
"""
import argparse

import numpy as np
import torch

import tensair


class Block(torch.nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(channels)
        self.conv2 = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(channels)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(y)))


class SmallResNet(torch.nn.Module):
    def __init__(self, classes=10, width=32):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, width, 3, padding=1)
        self.block1 = Block(width)
        self.down = torch.nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.block2 = Block(2 * width)
        self.head = torch.nn.Linear(2 * width, classes)

    def forward(self, image):
        x = torch.relu(self.stem(image))
        x = torch.max_pool2d(self.block1(x), 2)
        x = self.block2(torch.relu(self.down(x)))
        return self.head(x.mean(dim=(2, 3)))


def standardise(batch, flip=True, rng=np.random.default_rng(0)):
    """Per-image standardisation (and random horizontal flips) of a batch of CHW images."""
    image = np.asarray(batch["image"])
    mean = image.mean(axis=(1, 2, 3), keepdims=True)
    std = image.std(axis=(1, 2, 3), keepdims=True) + 1e-3
    image = (image - mean) / std
    if flip:
        which = rng.random(len(image)) < 0.5
        image[which] = image[which][:, :, :, ::-1]
    return {"image": image.astype(np.float32), "label": batch["label"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20000, help="training images to stream")
    ap.add_argument("--out", default="out/custom_model")
    args = ap.parse_args()

    torch.manual_seed(0)
    net = SmallResNet()
    schema = {"image": "float32[3,32,32]", "label": "int64"}
    job = tensair.Job("custom_model")
    job.add("train", "cifar10_source", normalize=False, shuffle_buffer=5000, batch_size=32,
            limit=args.images, replay=0, placement=0)
    job.add("prep", "python_map", fn=standardise, schema=schema, inputs="train")
    job.add("test", "cifar10_source", split="test", normalize=False, batch_size=500,
            limit=2000, placement=0)
    job.add("prep_test", "python_map", fn=lambda b: standardise(b, flip=False), schema=schema,
            inputs="test")
    job.add("model", "model", network=net, features="image", label="label",
            optimizer="adam", lr=0.001, eval_every=200, log_every=50,
            inputs={"train": "prep", "evaluate": "prep_test"})
    result = job.run(out=args.out, progress=True)

    # The trained weights are back in `net`: evaluate it in plain PyTorch on other test images.
    seen = []
    check = tensair.Job("custom_model_check")
    check.add("test", "cifar10_source", split="test", normalize=False, batch_size=500,
              limit=5000)
    check.add("sink", "python_sink", fn=lambda b: seen.append(standardise(b, flip=False)),
              inputs="test")
    check.run(out=args.out + "_check")
    net.eval()
    with torch.no_grad():
        right = sum(int((net(torch.from_numpy(b["image"])).argmax(1).numpy() == b["label"]).sum())
                    for b in seen[4:])
    total = sum(len(b["label"]) for b in seen[4:])
    model = result.summary["models"]["model"][0]
    print(f"{result.status}: {model['samples']:,} images in {result.elapsed_s:.1f} s; "
          f"the trained module in PyTorch, test images 2,000-4,999: {right / total:.3f}")


if __name__ == "__main__":
    main()
