"""The attack lab: the photo, a large Run button and the stage on the first screen; the setting folded away;
the verdict, charts, downloads and the share link below."""

import streamlit as st

from dlg_core import attack_registry
from ui import attack_view, batch, host, link, photo, rank_view, run_engine, settings, stage, threat_card

autorun = link.apply_shared_link()
attack_view.LAB.settle_interrupted()

st.title("Gradient Leakage Lab")
st.markdown("A client shares only the **gradient** of its model on a private photo. Press Run and watch an "
            "attacker who sees nothing but that gradient rebuild the photo.")
link.link_messages()

controls, stage_box = st.columns([1, 2], gap="medium")
with controls:
    chosen = photo.photo_fold()
    # The threat-model card's switches change the setting: they sit in its fold, near Run.
    config = settings.settings_fold(then=threat_card.threat_card)
    start, pressed = attack_view.LAB.controls(
        "Run the attack", ready=chosen is not None and config is not None, autorun=autorun,
        run_help="The client computes its gradient; the attacker starts from it alone.",
        stop_help="End the attack now and keep what it reached.")
    if pressed:
        link.clear_link_messages()  # a new run of the user's own: the link's note has served
    attack_view.setting_check(config)
    if config is not None and attack_registry.get(config.attack).walks_layers:
        rank_view.layer_chart(config, expanded=False)
history = attack_view.LAB.current()
if start:
    attack_view.live_attack_view(chosen, config, settings.current_label(), stage_box)
elif history is None:
    with stage_box:
        stage.idle_stage(attack_view.client_pixels(chosen, config))
else:
    with stage_box:
        stage.played_stage(history)
    st.header("What leaked", divider="red")
    attack_view.run_summary(history)
    attack_view.client_panel(history)
    attack_view.run_charts(history)
    batch.batch_view(history)
    st.subheader("Take it with you")
    attack_view.downloads(history)
    attack_view.share_box(history)
host.limits_panel(run_engine.run_slots().slots)
