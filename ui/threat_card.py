"""The threat-model card: what the attacker knows and assumes, in words, with the switches the code honours.

Each switch is a run setting (``AttackConfig``: ``labels_known``, ``batchnorm_train``, ``trained_steps``,
``clients``) or the malicious server's batch (``ui.batch``); the sentences are computed from the current choice.
"""

from __future__ import annotations

import streamlit as st

from dlg_core import attack_registry
from dlg_core.errors import BadInputError

from . import batch
from .settings import FIELD_KEYS, current_config, group_settings, setting_widget

KEY_TRAINED = "threat_trained"
TRAINED_STEPS = 300  # what the switch sets; the exact number is under "The victim"

# How it works, per threat model (also on the How it works page).
EXPLAINED = {
    "honest": ("**An honest-but-curious server** runs the protocol as agreed and trains the model it announced; it "
               "only looks closely at what it receives. It knows the model (it sent it) and each update, and "
               "rebuilds photos by finding inputs whose gradient matches (DLG, iDLG, Inverting Gradients)."),
    "malicious": ("**A malicious server** changes the model before sending it. Robbing the Fed (Fowl et al. 2022) "
                  "puts an imprint layer in front: rows that measure each photo against a ladder of thresholds. "
                  "The difference of two neighbouring rows' gradients is the one photo that fell between them, "
                  "exactly, for a whole batch, with no optimisation."),
    "aggregate": ("**Secure aggregation** hides each client's update inside a sum over many clients. To an honest "
                  "server the sum is the gradient of one big batch, which its attacks cannot untangle; the "
                  "malicious server's imprint rows separate photos by their measurement, not by client, so the sum "
                  "gives every photo back just the same."),
}


def _sync_trained() -> None:
    st.session_state[FIELD_KEYS["trained_steps"]] = TRAINED_STEPS if st.session_state[KEY_TRAINED] else 0


def _switches(attack: str) -> None:
    k = FIELD_KEYS
    st.session_state[KEY_TRAINED] = int(st.session_state[k["trained_steps"]]) > 0
    grid = st.grid(4, min_column_width=200, gap="small")
    with grid:
        for name in group_settings("threat"):  # clients, labels known, BatchNorm mode (declared in config.py)
            setting_widget(name)
            if name == "clients" and attack_registry.get(attack).malicious:
                batch.batch_size_input()
        st.toggle("Victim trained first", key=KEY_TRAINED, on_change=_sync_trained,
                  help=f"A victim trained {TRAINED_STEPS} steps on the bundled photos, never on the attacked one (the "
                       "number is under *The victim*), instead of a freshly drawn one.")


def _knows(attack: str, config) -> list[str]:
    spec = attack_registry.get(attack)
    server = "malicious" if spec.malicious else "honest-but-curious"
    label = ("the labels (told by the protocol)" if config.labels_known else
             f"no label: {spec.short} learns it with the photo" if spec.label_source == "learnt" else
             "no label: read off its bins" if spec.label_source == "bins" else
             "no label: read off the last layer's gradient")
    bn = ("" if config.model != "resnet" else
          " BatchNorm in training mode: the batch's statistics stay on the client." if config.batchnorm_train
          else " BatchNorm in evaluation mode: its fixed statistics are part of the model it knows.")
    who = "one client" if config.clients == 1 else f"the sum of {config.clients} clients' updates, not who sent what"
    age = "freshly drawn" if not config.trained_steps else f"trained {config.trained_steps} steps"
    return [f"**Server:** {server}" + (", it sent an imprinted model" if spec.malicious else ""),
            f"**Knows:** the model's weights, the update it receives, the photo's size; {label}.{bn}",
            f"**Sees:** {who}. **Victim:** {age}."]


def threat_card() -> None:
    """The card (after the settings panel; reads the current settings)."""
    try:
        config = current_config()
    except BadInputError:  # an invalid setting: the settings panel says why
        return
    with st.container(border=True, key="threat_card"):
        st.markdown("##### :material/shield_person: Threat model")
        _switches(config.attack)
        config = current_config()
        st.markdown("  \n".join(_knows(config.attack, config)))
        st.caption(EXPLAINED["malicious" if attack_registry.get(config.attack).malicious else "honest"]
                   + (" " + EXPLAINED["aggregate"] if config.clients > 1 else ""))
