"""Named grids that reproduce the papers' tables, each with a paragraph for the UI and a quick version."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import metrics
from .grid import ATTACKERS, Grid, Job
from .photos import SAMPLE_NAMES


@dataclass(frozen=True)
class Preset:
    name: str
    description: str  # one paragraph for the UI: the setting, what the paper reported, what we chose
    grid: Grid
    quick_grid: Grid  # a handful of jobs that finish in under a minute on one core (the app's)
    by: tuple[str, ...]  # how its summary is grouped

    def jobs(self, quick: bool = False) -> list[Job]:
        return (self.quick_grid if quick else self.grid).jobs()


DLG_DEFENCES = ("", "gaussian:0.0001", "gaussian:0.001", "gaussian:0.01", "gaussian:0.1", "prune:0.01", "prune:0.1",
                "prune:0.2", "prune:0.3", "prune:0.5", "prune:0.7", "fp16", "int8")

# The papers' presets pin DLG's squared L2 distance: the app's default may change, a paper's setting may not.
_seed_paper = Grid(attacks=("dlg", "layerwise"), models=("cnn",), sizes=(32,), classes=(2,), seeds=(0, 1, 2, 3, 4),
                   steps=300, max_seconds=60, distance="l2")
_idlg = Grid(attacks=("dlg", "idlg"), models=("lenet", "cnn", "mlp"), classes=(2, 10, 100), seeds=(0, 1, 2, 3, 4),
             steps=10, max_seconds=20, base="textbook")
# Beyond DLG's: sign compression, input mixing and Soteria (issue 15), each also against the adaptive attacker.
NEW_DEFENCES = ("sign", "mixup:0.25", "mixup:0.5", "soteria:0.5", "soteria:0.9")
_defences = Grid(attacks=("dlg",), models=("lenet",), classes=(100,), seeds=(0, 1, 2, 3, 4),
                 defenses=DLG_DEFENCES + NEW_DEFENCES, attackers=ATTACKERS,
                 steps=100, max_seconds=30, stop_at_psnr=metrics.SUCCESS_PSNR, distance="l2")
# Issue 4's grid with the layer-by-layer attack added (issue 12): the other attacks' jobs are issue 4's.
_beyond = Grid(attacks=("dlg", "idlg", "ig", "analytic", "layerwise"),
               models=("lenet", "cnn", "wide_cnn", "mlp", "resnet"),
               sizes=(32,),
               seeds=(0, 1, 2), batches=(1, 4), fedavg_steps=(1, 4), steps=300, steps_by_attack=(("ig", 1000),),
               max_seconds=60, omit_impossible=True, photo_per_seed=True)

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset(
        "seed-paper",
        "The seed paper's setting (Mu 2023, arXiv:2301.02621): DLG against a small sigmoid CNN with two classes, "
        "on the six bundled cat and dog photos (label: cat or dog), at 32x32 px, 300 L-BFGS steps, five seeds. "
        "The paper reports a mean MSE of about 5 on the 0-255 scale (about 41 dB) and most images completely "
        "restored. We count a photo as completely restored when its PSNR is at least 30 dB (MSE at most 65 on "
        "0-255), the line this project uses everywhere; the table's mean MSE (0-255) is the paper's figure. "
        "DLG's squared L2 gradient distance, with the app's optimiser (mid-grey start, strong-Wolfe L-BFGS), not "
        "DLG's N(0,1) start. Beside it, the paper's own description of its method, \"gradually extending from "
        "the fully-connected layer to the convolution layer\": the layer-by-layer attack (R-GAP, Zhu & Blaschko "
        "2021), which reads the fully-connected layer's input in closed form and walks back through the "
        "convolutions.",
        # The quick version stays DLG's two runs: the layer-by-layer rows take a second each in the full grid.
        _seed_paper, replace(_seed_paper, attacks=("dlg",), images=SAMPLE_NAMES[::3], seeds=(0,), steps=100),
        by=("attack", "model", "size"),
    ),
    Preset(
        "idlg-labels",
        "Label accuracy of DLG against iDLG (Zhao et al. 2020), with DLG's own optimiser (N(0,1) start, PyTorch "
        "L-BFGS, lr 1), over three victims (LeNet, the CNN, the fully-connected net), 2, 10 and 100 classes, the "
        "six bundled photos (labels: cat/dog for 2 classes, otherwise the photo's index) and five seeds. iDLG "
        "reads the label off the last layer before the first step; DLG learns it along with the image, mostly "
        "within its first few steps, so each run stops after 10 steps: the images are not finished, only the "
        "labels are judged. DLG's label can still change later (of the 17 of 270 DLG runs wrong after 10 steps, "
        "4 were right after 60), so its figure here is a slight underestimate. The iDLG paper reports 100% for "
        "iDLG and 79-89% for DLG.",
        _idlg, replace(_idlg, images=SAMPLE_NAMES[:1], seeds=(0,), classes=(2, 100), steps=5),
        by=("attack", "model", "classes"),
    ),
    Preset(
        "dlg-defenses",
        "DLG's defences (Zhu et al. 2019, section 5): Gaussian noise of scale 1e-4 to 1e-1 (variance 1e-8 to "
        "1e-2), pruning 1% to 70% of each layer's smallest entries, half precision and 8-bit integers, with no "
        "defence as the reference. DLG's setting as far as it is sensible here: the DLG attack (label learnt), "
        "LeNet with sigmoids and 100 classes at 32x32 px, the squared L2 gradient distance, on the six bundled "
        "photos with five seeds; the app's optimiser (mid-grey start, strong-Wolfe L-BFGS) instead of DLG's "
        "N(0,1) start, which fails on some seeds even undefended. A run stops once it reaches 30 dB (a success, "
        "so its MSE is near that line) or after 100 steps. DLG reports that noise of variance 1e-2 (scale 0.1) "
        "and pruning more than 20% stop the attack, and that half precision does not. Added here: sign "
        "compression (signSGD), input mixing (MixUp) and Soteria, and beside every defended run one by an "
        "adaptive attacker who knows the defence (it matches only the entries kept, compares signs, weighs by "
        "the noise, unmixes the photo); the column FL acc is a small federated model's test accuracy after "
        "30 rounds with that defence (dlg_core/utility.py).",
        _defences, replace(_defences, images=SAMPLE_NAMES[:1], seeds=(0,), steps=80,
                           defenses=("", "gaussian:0.01", "prune:0.7", "mixup:0.5", "soteria:0.9")),
        by=("defenses", "attacker"),
    ),
    Preset(
        "beyond",
        "The other attacks and victims (issue 4): DLG, iDLG, Inverting Gradients, the closed-form attack and the "
        "layer-by-layer attack (R-GAP), against LeNet, the CNN, the app's wide CNN, the fully-connected net and the "
        "small ResNet at 32x32 px, one photo or four at once, FedSGD or 4 local FedAvg steps, seeds 0-2, with two "
        "classes and the app's default settings otherwise (each attack's own per-victim defaults). Seed s attacks "
        "photo s (a batch of four: photos s to s+3), not every photo: the full cross would be six times as long; "
        "the project's figures come from the report photos (`--images` with the folder `python -m dlg_core photos "
        "--set report` writes). The closed-form attack runs only against the fully-connected net, the "
        "layer-by-layer attack only on FedSGD and not on the ResNet (the other combinations are left out); with "
        "two classes a batch of four repeats its labels, which keeps the gradient-matching attacks far from the "
        "photos, and the layer-by-layer attack reads a batch only where the fully-connected layer's gradient "
        "spans its photos (the MLP's hidden layer; an output layer needs more classes than photos), so it skips "
        "the convolutional victims' batches (`--classes 10` gives four distinct labels). L-BFGS attacks get "
        "300 steps, Inverting Gradients 1000 (Adam); every run at most 60 s.",
        _beyond, replace(_beyond, images=SAMPLE_NAMES[:1], seeds=(0,), batches=(1,), fedavg_steps=(1,),
                         models=("lenet", "mlp"), steps=30, steps_by_attack=(("ig", 60),)),
        by=("attack", "model", "batch", "fedavg_steps"),
    ),
)}
