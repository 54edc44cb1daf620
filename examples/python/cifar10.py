"""examples/cifar10.toml from Python: the reference's CIFAR-10 CNN trained online from the
training stream, evaluated on the test set as it learns.

    PYTHONPATH=build/python /usr/bin/python3 examples/python/cifar10.py [--passes N]
    mpirun -np 2 --oversubscribe --bind-to none -x PYTHONPATH=build/python \\
        /usr/bin/python3 examples/python/cifar10.py         # DASGD on two replicas

The job is built in Python with the job file's keys; Job.from_toml("examples/cifar10.toml")
gives the same job from the file.
"""
import argparse
import json
import os

import tensair


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passes", type=int, default=1, help="passes over the 50,000 images")
    ap.add_argument("--images", type=int, default=0, help="stop after this many (0: all)")
    ap.add_argument("--out", default="out/cifar10_py")
    args = ap.parse_args()

    job = tensair.Job("cifar10_py")
    job.add("train", "cifar10_source", replay=args.passes, shuffle_buffer=10000, batch_size=32,
            limit=args.images, placement=0)
    job.add("test", "cifar10_source", split="test", batch_size=500, placement=0)
    job.add("model", "model", network="cifar_cnn", optimizer="adam", lr=0.0007,
            eval_every=500, log_every=50, export="cifar_cnn_{rank}.pt",
            inputs={"train": {"from": "train", "routing": "round_robin"},
                    "evaluate": {"from": "test", "routing": "to_rank", "rank": 0}})
    result = job.run(out=args.out, progress=True)
    if result.rank != 0:
        return
    evals = [json.loads(l) for l in open(os.path.join(args.out, "metrics.jsonl"))
             if '"kind":"eval"' in l]
    print("samples seen  test accuracy")
    for e in evals:
        print(f"{e['samples_seen']:>12,}  {e['accuracy']:.3f}")
    model = result.summary["models"]["model"][0]
    print(f"{result.status} in {result.elapsed_s:.1f} s: {model['samples']:,} samples trained "
          f"on {result.world_size} rank(s); model in {args.out}/cifar_cnn_0.pt")


if __name__ == "__main__":
    main()
