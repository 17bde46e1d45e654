"""README "In training code": a student matched to a teacher's RDMs with RSALoss under
torch.compile, then StreamingCKA in an evaluation loop. Runs on the CPU in about a minute."""

import torch

import fastrsa.torch as ft

torch.manual_seed(0)
teacher = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Tanh(), torch.nn.Linear(64, 48))
student = torch.nn.Sequential(torch.nn.Linear(32, 16), torch.nn.ReLU(), torch.nn.Linear(16, 24))
loss_fn = ft.RSALoss(method="spearman")  # 1 - Spearman (soft ranks) of the two RDMs
opt = torch.optim.Adam(student.parameters(), lr=1e-2)


@torch.compile(fullgraph=True)  # no graph break: the soft rank is a registered custom op
def step_loss(images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        target = teacher(images)  # (n, 48) teacher features
    return loss_fn(student(images), target)  # RDMs of both, compared


for step in range(201):
    images = torch.randn(128, 32)  # a batch of n = 128 "images"
    loss = step_loss(images)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 50 == 0:
        print(f"step {step:3d}: RSA loss {loss.item():.4f}")

# evaluation: linear CKA over all held-out batches, exactly the full-batch value
cka = ft.StreamingCKA()  # biased HSIC; StreamingCKA(debiased=True) for the unbiased one
held_out = [torch.randn(b, 32) for b in (100, 37, 250)]  # batches of any size
with torch.no_grad():
    for images in held_out:
        cka.update(student(images), teacher(images))  # no host sync inside
    everything = torch.cat(held_out)
    full = ft.cka(student(everything), teacher(everything))
print(f"streaming CKA {cka.compute().item():.6f}, full batch {full.item():.6f}")
