"""torch.nn.Module values of a job: scripted (or traced) into the TorchScript files the Model
operator loads, and the trained weights read back after the run."""
import io
import os

from ._tensair import ModelError


def script_network(module, example_input, op):
    """A TorchScript module for `module`: torch.jit.script, or torch.jit.trace with
    `example_input` (a tensor or a tuple of tensors) when scripting fails."""
    import torch

    if isinstance(module, torch.jit.ScriptModule):
        return module
    try:
        scripted = torch.jit.script(module)
        # Some methods compile only when saved: fail here, not in the engine.
        torch.jit.save(scripted, io.BytesIO())
        return scripted
    except Exception as e:  # torch raises many kinds here
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if example_input is None:
            raise ModelError(
                f"[{op}] network: torch.jit.script failed ({reason}); give example_input= "
                "(a tensor of the network's input) to trace it instead") from None
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    try:
        with torch.no_grad():
            return torch.jit.trace(module, inputs)
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"[{op}] network: torch.jit.trace failed ({reason})") from None


def save_network(scripted, path):
    """Saves atomically: every rank of a job may read the file while another writes it."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    scripted.save(tmp)
    os.replace(tmp, path)


def load_trained(module, path):
    """Copies the weights of the exported TorchScript file `path` into `module`."""
    import torch

    trained = torch.jit.load(path)
    module.load_state_dict(trained.state_dict())
