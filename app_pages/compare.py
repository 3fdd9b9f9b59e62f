"""Compare attacks: one private photo, one shared update, 2-4 attacks on it side by side, live."""

import streamlit as st

from ui import attack_view, compare_view, host, photo, settings

compare_view.settle_interrupted_comparison()
compare_view.keep_photo_source()

st.title("Compare attacks")
st.markdown(
    "One client, one private photo, **one shared update**, and several attackers who each get exactly that "
    "update. DLG and iDLG match the gradient with L-BFGS, Inverting Gradients matches its direction with a "
    "smoothness prior, and the closed form solves a fully-connected layer in one step. Which one rebuilds "
    "the photo, how well, and how fast?"
)

chosen = photo.photo_section()

st.header("2 · The victim and its update", divider="red")
st.caption("The same settings as on the Attack lab (changed here, they change there too). Try the CNN victim "
           "with the ReLU activation (under *The victim*): L-BFGS on the squared distance stalls there, Inverting "
           "Gradients does not. Or a trained victim, whose confident, smaller gradient gives every attack less.")
config = settings.settings_panel(choose_attack=False)

st.header("3 · The attacks", divider="red")
attacks, steps = compare_view.attack_choice(config.model if config else "")
ready = chosen is not None and config is not None and len(attacks) >= 2
start = compare_view.run_controls(ready)
host.limits_panel(attack_view.run_slots().slots)
st.caption(compare_view.ORDER_NOTE)

comparison = compare_view.current_comparison()
if start:
    compare_view.live_comparison(chosen, config, settings.current_label(), attacks, steps)
elif comparison is None:
    st.info("Press **Run the comparison**: the client computes its update once, then each attack takes its "
            "turn on it, live.", icon=":material/play_circle:")
else:
    st.header("4 · How they did", divider="red")
    compare_view.results_view(comparison)
