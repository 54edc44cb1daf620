"""Runs a command (an mpirun line) and slows one of its ranks by an external duty cycle: the
rank's process is stopped (SIGSTOP) for --stop-ms and let run (SIGCONT) for --run-ms, over and
over, until it exits. 20 ms / 20 ms halves the rank's speed. The same mechanism slows
TensAIR's rank and PyTorch DDP's rank in bench_peers.py, so the comparison is fair.

    /usr/bin/python3 bench/peers/straggle.py --rank 1 -- mpirun -np 2 ... CMD

The rank's process is the descendant whose environment has OMPI_COMM_WORLD_RANK=<rank> (Open
MPI sets it for every rank it starts). Exit status: the command's. Prints to stderr how many
cycles it applied.
"""
import argparse
import os
import signal
import subprocess
import sys
import time


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def descendants(pid):
    out, todo = [], children(pid)
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


def rank_of(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            for item in f.read().split(b"\0"):
                if item.startswith(b"OMPI_COMM_WORLD_RANK="):
                    return int(item.split(b"=", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def find_rank(root, rank, proc):
    """The deepest descendant of `root` with that rank (a wrapper shell would be shallower)."""
    while proc.poll() is None:
        found = [p for p in descendants(root) if rank_of(p) == rank]
        if found:
            return found[-1]
        time.sleep(0.01)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rank", type=int, default=1)
    ap.add_argument("--stop-ms", type=float, default=20.0)
    ap.add_argument("--run-ms", type=float, default=20.0)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("no command after --")
    proc = subprocess.Popen(cmd)
    target = find_rank(proc.pid, a.rank, proc)
    cycles = 0
    try:
        while target is not None and proc.poll() is None:
            try:
                os.kill(target, signal.SIGSTOP)
                time.sleep(a.stop_ms / 1000)
                os.kill(target, signal.SIGCONT)
            except ProcessLookupError:
                break
            cycles += 1
            time.sleep(a.run_ms / 1000)
    finally:
        if target is not None:
            try:
                os.kill(target, signal.SIGCONT)
            except ProcessLookupError:
                pass
    rc = proc.wait()
    print(f"straggle.py: rank {a.rank} (pid {target}) stopped {cycles} times for "
          f"{a.stop_ms:g} ms of every {a.stop_ms + a.run_ms:g} ms", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
