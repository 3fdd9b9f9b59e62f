"""How it works: the threat model, the maths of gradient matching and of iDLG's label trick, and the numbers."""

import streamlit as st

from dlg_core import verdict
from dlg_core.config import DEFAULT
from ui import explain, photo, rank_view, settings, style, threat_card


@st.cache_data(show_spinner=False)
def counts(model: str, size: int) -> verdict.SettingCheck:
    """The same counts the Attack lab shows before a run (dlg_core.verdict.check_setting)."""
    return verdict.check_setting(DEFAULT.replace(model=model, size=size))


wide32, lenet32, lenet64 = counts(DEFAULT.model, 32), counts("lenet", 32), counts("lenet", 64)

st.title("How it works")
st.markdown(
    "Federated learning trains one model across many clients without collecting their data: each client "
    "computes an update on its own photos and sends only that update. *Deep leakage from gradients* shows "
    "that the update itself can give the photos away."
)

st.header("The threat model", divider="red")
sees, hidden = st.columns(2, gap="large")
with sees:
    st.markdown(
        "**What the server sees** (and so an honest-but-curious server, or anyone who intercepts the update):\n"
        "- the shared model: its architecture and every weight (it sent them to the client itself);\n"
        "- the client's **gradient** for one training step (FedSGD): one number per weight;\n"
        "- the shape of the input (one 32 x 32 colour photo, say) and the number of classes."
    )
with hidden:
    st.markdown(
        "**What it never sees:**\n"
        "- the private photo;\n"
        "- its label.\n\n"
        "The attacker follows the protocol to the letter. It only looks very closely at what it receives; "
        "in this demo the true photo is used for one thing alone: to score the reconstruction."
    )
wide, narrow = style.by_width("diagram")  # left to right on a wide screen, one column on a phone
wide.graphviz_chart(explain.diagram(), width="content", alt=explain.DIAGRAM_ALT)
narrow.graphviz_chart(explain.diagram(narrow=True), width="stretch", alt=explain.DIAGRAM_ALT)
st.subheader("Three threat models")
st.markdown("\n\n".join(threat_card.EXPLAINED.values()))
st.caption("The Attack lab's *Threat model* card sets which one you attack under, and what else the attacker "
           "knows: the labels or not, BatchNorm's batch statistics or not, a fresh or a trained victim.")

st.header("Gradient matching (DLG)", divider="red")
st.markdown("The client trains the shared model $F(\\cdot, W)$ on its photo $x$ with label $y$ and shares")
st.latex(r"\nabla W = \frac{\partial\, \ell\big(F(x, W),\, y\big)}{\partial W}")
st.markdown(
    "The attacker starts from a dummy photo $x'$ (mid-grey here, random noise in the paper) and a dummy label "
    "$y'$, computes the gradient *they* would produce, and changes them until the two gradients match:"
)
st.latex(r"x'^{*},\, y'^{*} \;=\; \arg\min_{x',\, y'} \;\Big\| \frac{\partial\, \ell\big(F(x', W),\, y'\big)}"
         r"{\partial W} - \nabla W \Big\|^2")
st.markdown(
    "Minimising this means differentiating a gradient, so the model must be twice differentiable: that is "
    "why DLG's victim uses sigmoids instead of ReLUs. The optimiser is L-BFGS, and each of its steps "
    "evaluates the distance and its gradient several times. When the distance reaches zero, the dummy photo "
    f"usually *is* the private photo: at 32 x 32 the default victim's gradient has {wide32.equations:,} numbers "
    f"(DLG's LeNet: {lenet32.equations:,}) and the photo only {wide32.unknowns:,} unknown pixel values. "
    "Geiping et al. replace the squared distance by a cosine one, which "
    "ignores the gradient's scale; it is this demo's default too:"
)
st.latex(r"d_{\cos}(g', g) = 1 - \frac{\langle g', g\rangle}{\|g'\|\,\|g\|}")
st.markdown(
    "How many numbers the gradient holds decides how much of the photo it pins down, and not every number "
    "counts alike. A convolution's gradient has as many numbers as its filters, whatever the photo's size: at "
    f"64 x 64 DLG's LeNet shares {lenet64.equations:,} numbers (the count the Attack lab shows) for "
    f"{lenet64.unknowns:,} pixel values, but only its last layer's input, {lenet64.last_layer_input:,} numbers, "
    "grows with the photo, a quarter of its pixel values; the attacks here rebuilt none of the six sample "
    "photos there, and the Attack lab warns before such a run. "
    "The demo's default victim, the **wide CNN**, ends in a fully-connected layer whose input has four "
    "times as many numbers as the photo has pixels, and that layer's weight gradient hands them over "
    "(row $i$ is $\\partial \\ell / \\partial b_i$ times the input): iDLG rebuilt every sample photo "
    "from it, at 32 and at 64 px, in a few dozen gradient evaluations."
)

st.header("iDLG's label trick", divider="red")
st.markdown(
    "The last layer computes logits $z = W_L h + b$ from its input $h$, and the loss is the cross-entropy of "
    "$p = \\mathrm{softmax}(z)$ with the one-hot label $y$. Its gradient is"
)
st.latex(r"\frac{\partial \ell}{\partial z_i} = p_i - y_i, \qquad "
         r"\frac{\partial \ell}{\partial W_{L,i}} = (p_i - y_i)\, h^{\top}")
st.markdown(
    "After a sigmoid, $h \\geq 0$. For every wrong class $p_i - y_i = p_i > 0$, so its row of the gradient is "
    "positive; for the true class $c$, $p_c - 1 < 0$, so its row is **negative**. The attacker simply picks "
    "the row whose sum is below zero, and then only has to find the photo. Here is that gradient for the "
    "photo and settings chosen on the Attack lab page:"
)
explain.label_clue(photo.current_or_first_photo(), settings.current_config(), settings.current_label())

st.header("Beyond DLG: the closed form, and trained victims", divider="red")
st.markdown(
    "When the victim's first layer is fully connected, $y = W x + b$, no optimisation is needed. The chain "
    "rule gives, for each of its output units $i$,"
)
st.latex(r"\frac{\partial \ell}{\partial W_i} = \frac{\partial \ell}{\partial b_i}\, x^{\top}")
st.markdown(
    "so any row of the weight gradient divided by its bias gradient **is** the photo: exact and instant, at "
    "any resolution (the *closed form* attack, for the MLP victim). **With a batch** of photos the shared "
    "gradient is a sum over the batch, and the same division gives"
)
st.latex(r"\frac{\sum_n \partial \ell_n / \partial W_i}{\sum_n \partial \ell_n / \partial b_i} "
         r"= \sum_n \frac{d_{ni}}{\sum_m d_{mi}}\, x_n, \qquad d_{ni} = \frac{\partial \ell_n}{\partial b_i}")
st.markdown(
    "a weighted average of the photos: a **mixture**, not any one of them. A row gives one photo clean only "
    "when a single photo drives that unit (after a ReLU, one that every other photo leaves switched off).\n\n"
    "**A trained victim leaks differently.** Every gradient starts from $p - y$ at the output: a net trained "
    "on photos like the client's is confident on them ($p$ near 1 for the true class), so its whole gradient "
    "shrinks and "
    "carries less, and the attacks get less back (the app then warns of a weak gradient). A photo it gets "
    "wrong still leaks as much as ever, and its learnt features, not random ones, are what the gradient "
    "describes. The *Compare attacks* page runs several attacks on one shared update to show all this side "
    "by side."
)

st.header("Layer by layer: the seed paper's path", divider="red")
st.markdown(
    "The seed paper describes its attack as one that *gradually extends from the fully-connected layer to the "
    "convolution layer*; Zhu & Blaschko's **R-GAP** (ICLR 2021) works the same path out in closed form. The "
    "fully-connected layer's input $h$ comes first and whole, as above: $h = (\\partial \\ell / \\partial W_i) / "
    "(\\partial \\ell / \\partial b_i)$. For the convolution $k$ below it, whose output $h_k$ is now known:"
)
st.latex(r"z_k = \sigma^{-1}(h_k), \qquad \delta_k = \frac{\partial \ell}{\partial h_k} \odot h_k (1 - h_k)")
st.latex(r"\mathrm{conv}_k(x) = z_k - b_k, \qquad "
         r"\sum_{p} \delta_{k,p}\, x_{\mathrm{patch}(p)}^{\top} = \frac{\partial \ell}{\partial W_k}")
st.markdown(
    "Undoing the sigmoid gives the layer's pre-activation $z_k$, and with it two sets of equations that are "
    "*linear* in the layer's input $x$: one per number of the output (forward) and one per weight (the weight "
    "gradient, with $\\delta_k$ known from the layers above). Where they are at least as many as $x$ has "
    "numbers, least squares gives $x$, which is the output of the layer below, and the walk goes on down to the "
    "photo. Where they are fewer, the layer cannot be undone alone, and the photo is fitted to what the layers "
    "above gave away instead. ReLUs end the walk (the negative pre-activations are gone), and so do a ResNet's "
    "BatchNorm and skip connections. The count for the chosen victim and size:"
)
rank_view.layer_chart(settings.current_config())
st.markdown("And the walk itself, for the photo and setting chosen on the Attack lab (one photo; with a batch "
            "each row of the fully-connected gradient gives a mixture of the photos' features):")
rank_view.layer_walk(photo.current_or_first_photo(), settings.current_config(), settings.current_label())

st.header("What the numbers mean", divider="red")
st.markdown(
    "The attacker only ever sees the **gradient distance**. The demo also knows the true photo, so it scores "
    "the reconstruction $x'$ against $x$, over all $n = 3 \\times H \\times W$ pixel values (each from 0 to 255):"
)
st.latex(r"\mathrm{MSE}_{255} = \frac{1}{n}\sum_{k=1}^{n} \big(x'_k - x_k\big)^2")
st.latex(r"\mathrm{MSE}_{[0,1]} = \frac{\mathrm{MSE}_{255}}{255^2}")
st.latex(r"\mathrm{PSNR} = 10 \log_{10} \frac{255^2}{\mathrm{MSE}_{255}}\ \mathrm{dB}")
st.latex(r"\mathrm{MSE}_{255} = 5 \;\Rightarrow\; \mathrm{PSNR} = 10 \log_{10} \frac{65\,025}{5} "
         r"\approx 41.1\ \mathrm{dB}")
st.markdown(
    "The seed paper's *MSE of about 5* is on the 0-255 scale: each pixel value is off by about 2 of 255 on "
    "average, about **41 dB**, invisible to the eye. The app's line is **30 dB**, but pictures a few dB below "
    "it often look the same too (26-28 dB with an SSIM of 0.85-0.97 were seen here), so the verdict after a "
    f"run reads SSIM first: *looks the same* from SSIM {verdict.SAME_SSIM} (or 30 dB), *recognisable* from "
    f"{verdict.RECOGNISABLE_SSIM}, *partly* from {verdict.PARTLY_SSIM}, else *not leaked*. "
    "**SSIM** (structural similarity) compares local patterns of brightness and contrast: 1 is identical, "
    "0 is unrelated."
)
st.dataframe(explain.psnr_table(), hide_index=True, width="stretch",
             column_config={"MSE on [0, 1]": st.column_config.NumberColumn(format="%.2e")})

st.header("Read more", divider="red")
st.markdown(
    "- **The seed paper:** Mu, *Deep leakage from gradients*, arXiv:2301.02621, 2023. "
    "[arxiv.org/abs/2301.02621](https://arxiv.org/abs/2301.02621)\n"
    "- Zhu, Liu & Han, *Deep Leakage from Gradients*, NeurIPS 2019: the attack by gradient matching (DLG). "
    "[arxiv.org/abs/1906.08935](https://arxiv.org/abs/1906.08935)\n"
    "- Zhao, Mopuri & Bilen, *iDLG: Improved Deep Leakage from Gradients*, 2020: the label trick. "
    "[arxiv.org/abs/2001.02610](https://arxiv.org/abs/2001.02610)\n"
    "- Geiping, Bauermeister, Dröge & Moeller, *Inverting Gradients: How easy is it to break privacy in "
    "federated learning?*, NeurIPS 2020: cosine distance and image priors, larger photos and networks. "
    "[arxiv.org/abs/2003.14053](https://arxiv.org/abs/2003.14053)\n"
    "- McMahan et al., *Communication-Efficient Learning of Deep Networks from Decentralized Data*, AISTATS "
    "2017: federated learning (FedSGD, FedAvg). [arxiv.org/abs/1602.05629](https://arxiv.org/abs/1602.05629)\n"
    "- Fowl, Geiping, Czaja, Goldblum & Goldstein, *Robbing the Fed: Directly Obtaining Private Data in Federated "
    "Learning with Modified Models*, ICLR 2022: the malicious server's imprint layer. "
    "[arxiv.org/abs/2110.13057](https://arxiv.org/abs/2110.13057)\n"
    "- Bonawitz et al., *Practical Secure Aggregation for Privacy-Preserving Machine Learning*, CCS 2017: the "
    "server learns only the sum of the clients' updates. [eprint.iacr.org/2017/281](https://eprint.iacr.org/2017/281)"
)
