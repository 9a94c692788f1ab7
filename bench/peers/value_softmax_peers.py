"""Purpose: the value-softmax study written the way a researcher would without softflow, as peers to time against:
gd on the logistic loss l(beta) = log(1 + exp(-<beta*, beta>)), beta = V softmax(a), with every run a batch row.
Same initial distributions as softflow (V ~ sigma_v N(0, 1), a ~ sigma_a N(0, 1), beta* a random unit vector per
run), same step and number of steps; different random streams, so results agree statistically, not bit for bit.

Peers (each returns the final softmax of every run and the seconds of its step loop):
  torch_autograd   batched tensors, the loss summed over runs, torch.autograd for the gradient
  torch_manual     batched tensors, the gradient written out (science.md section 1): s = softmax(a), beta = V s,
                   r = g beta* with g = sigmoid(-<beta*, beta>), u = V^T r, dV = r s^T, da = s .* (u - <s, u>)
  torch_compile    torch_manual under torch.compile (PyTorch 2 and later)
  jax_jit_vmap     the per-run gradient by jax.grad, jit(vmap(...)) over runs, the step loop in lax.fori_loop
"""
import math
import time


def torch_available():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


def jax_available():
    try:
        import jax  # noqa: F401
        return True
    except ImportError:
        return False


def _torch_setup(size, runs, sigma_v, sigma_a, dtype, device, seed):
    import torch
    generator = torch.Generator(device="cpu").manual_seed(seed)
    v = (sigma_v * torch.randn(runs, size, size, generator=generator, dtype=dtype)).to(device)
    a = (sigma_a * torch.randn(runs, size, generator=generator, dtype=dtype)).to(device)
    target = torch.randn(runs, size, generator=generator, dtype=dtype)
    target = (target / target.norm(dim=1, keepdim=True)).to(device)
    return v, a, target


def _synchronize(device):
    import torch
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def torch_autograd(size, runs, steps, step, sigma_v, sigma_a, dtype, device, seed=1):
    import torch
    v, a, target = _torch_setup(size, runs, sigma_v, sigma_a, dtype, device, seed)
    v.requires_grad_(True)
    a.requires_grad_(True)
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        s = torch.softmax(a, dim=1)
        beta = torch.einsum("rdn,rn->rd", v, s)
        loss = torch.nn.functional.softplus(-(beta * target).sum(dim=1)).sum()
        grad_v, grad_a = torch.autograd.grad(loss, (v, a))
        with torch.no_grad():
            v -= step * grad_v
            a -= step * grad_a
    _synchronize(device)
    seconds = time.perf_counter() - start
    return torch.softmax(a.detach(), dim=1), seconds


def _manual_step(v, a, target, step):
    import torch
    s = torch.softmax(a, dim=1)
    beta = torch.einsum("rdn,rn->rd", v, s)
    g = torch.sigmoid(-(beta * target).sum(dim=1, keepdim=True))
    r = g * target
    u = torch.einsum("rdn,rd->rn", v, r)
    da = s * (u - (s * u).sum(dim=1, keepdim=True))
    return v + step * r.unsqueeze(2) * s.unsqueeze(1), a + step * da


def torch_manual(size, runs, steps, step, sigma_v, sigma_a, dtype, device, seed=1, compiled=False):
    import torch
    v, a, target = _torch_setup(size, runs, sigma_v, sigma_a, dtype, device, seed)
    update = _manual_step
    if compiled:
        if not hasattr(torch, "compile"):
            raise RuntimeError(f"torch.compile needs PyTorch 2 (this is {torch.__version__})")
        update = torch.compile(_manual_step)
        v, a = update(v, a, target, step)  # compile outside the timed loop (one step more than the others)
        steps -= 1
    _synchronize(device)
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(steps):
            v, a = update(v, a, target, step)
    _synchronize(device)
    seconds = time.perf_counter() - start
    return torch.softmax(a, dim=1), seconds


def torch_compile(size, runs, steps, step, sigma_v, sigma_a, dtype, device, seed=1):
    return torch_manual(size, runs, steps, step, sigma_v, sigma_a, dtype, device, seed, compiled=True)


def jax_jit_vmap(size, runs, steps, step, sigma_v, sigma_a, dtype, device, seed=1):
    import jax
    import jax.numpy as jnp
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    jdtype = jnp.float64 if dtype == "float64" else jnp.float32
    keys = jax.random.split(jax.random.PRNGKey(seed), 3)
    v = sigma_v * jax.random.normal(keys[0], (runs, size, size), jdtype)
    a = sigma_a * jax.random.normal(keys[1], (runs, size), jdtype)
    target = jax.random.normal(keys[2], (runs, size), jdtype)
    target = target / jnp.linalg.norm(target, axis=1, keepdims=True)

    def loss(v1, a1, t1):
        return jax.nn.softplus(-jnp.dot(t1, v1 @ jax.nn.softmax(a1)))

    grad = jax.vmap(jax.grad(loss, argnums=(0, 1)))

    @jax.jit
    def run(v0, a0):
        def body(_, state):
            gv, ga = grad(state[0], state[1], target)
            return state[0] - step * gv, state[1] - step * ga
        return jax.lax.fori_loop(0, steps, body, (v0, a0))

    run(v, a)[1].block_until_ready()  # compile (and run once) outside the timing
    start = time.perf_counter()
    _, a_final = run(v, a)
    a_final.block_until_ready()
    seconds = time.perf_counter() - start
    return jax.nn.softmax(a_final, axis=1), seconds


PEERS = {"torch_autograd": torch_autograd, "torch_manual": torch_manual, "torch_compile": torch_compile,
         "jax_jit_vmap": jax_jit_vmap}


def entropy_ratio_statistics(s):
    """Mean, standard deviation and median of H(s) / log n over runs; s: runs x n (torch or jax array)."""
    import numpy as np
    s = np.asarray(s.cpu() if hasattr(s, "cpu") else s, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(s > 0, s * np.log(s), 0.0).sum(axis=1) / math.log(s.shape[1])
    return {"mean": float(h.mean()), "std": float(h.std(ddof=1)), "q50": float(np.median(h)), "count": int(h.size)}
