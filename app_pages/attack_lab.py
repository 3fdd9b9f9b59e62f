"""The attack lab: choose a private photo and a setting, run the attack live, then replay, download, share."""

import streamlit as st

from ui import attack_view, batch, host, link, photo, rank_view, settings, threat_card

autorun = link.apply_shared_link()
attack_view.settle_interrupted_run()

st.title("Gradient Leakage Lab")
st.markdown(
    "In federated learning a client never sends its photos, only the **gradient** of the shared model on them. "
    "Watch an attacker who sees nothing but that gradient rebuild the private photo, pixel by pixel."
)
link.link_messages()

chosen = photo.photo_section()

st.header("2 · The setting", divider="red")
config = settings.settings_panel()
threat_card.threat_card()
if config is not None and config.attack == "layerwise":
    rank_view.layer_chart(config)

st.header("3 · The attack", divider="red")
start = attack_view.run_controls(ready=chosen is not None and config is not None, autorun=autorun)
host.limits_panel(attack_view.run_slots().slots)
history = attack_view.current_history()
if start:
    attack_view.live_attack_view(chosen, config, settings.current_label())
elif history is None:
    st.info("Press **Run the attack**: the client computes its gradient on the photo, and the attacker "
            "starts from that gradient alone.", icon=":material/play_circle:")
else:
    attack_view.client_panel(history)
    attack_view.replay_view(history)
    batch.batch_view(history)

    st.header("4 · After the attack", divider="red")
    attack_view.run_summary(history)
    st.subheader("Take it with you")
    attack_view.downloads(history)
    attack_view.share_box(history)
