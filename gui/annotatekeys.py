"""The coding window's keys (the window's, whenever no text field has focus):

=================  ==========================================================
Left / Right       one frame back / on (Shift: ten; Page Up / Down: one second)
Home / End         first / last frame
Space              play / pause;  R: play in reverse
1 2 3 4            speed 1, 1/5, 1/10, 1/30
L                  loop over the mark in progress (or the event under the cursor)
O  A  F            mark onset, apex, offset at the current frame
Enter              save the event;  Esc: cancel the mark (and leave a text field)
N / Shift+N        next / previous spotter candidate
M / Shift+M        next / previous session marker
J / Shift+J        next / previous saved event
U  T  G            type the AUs / the notes / a frame number to go to (Enter: back)
Ctrl+1 .. Ctrl+8   emotion: happiness, surprise, sadness, fear, anger, disgust,
                   contempt, others
=================  ==========================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QKeyEvent

from mmmelab.analysis.annotations.coding import EMOTIONS

if TYPE_CHECKING:
    from mmmelab.gui.annotate import CodingWindow

SPEED_KEYS = (Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3, Qt.Key.Key_4)
EMOTION_KEYS = tuple(Qt.Key(Qt.Key.Key_1.value + i) for i in range(len(EMOTIONS)))  # Ctrl+1-8
KEYS_HELP = (
    "Left/Right 1 frame (Shift 10, PgUp/PgDn 1 s) · Space play · R reverse · 1-4 speed · "
    "L loop · O/A/F onset/apex/offset · U type AUs · Ctrl+1-8 emotion · T notes · "
    "G go to frame · Enter save · Esc cancel · N candidate · M marker · J event"
)


def handle_key(win: CodingWindow, ev: QKeyEvent) -> bool:
    """Do what key ``ev`` means in ``win``; False when it means nothing here."""
    try:
        k = Qt.Key(ev.key())
    except ValueError:  # a key Qt has no name for
        return False
    mods = ev.modifiers()
    shift = bool(mods & Qt.KeyboardModifier.ShiftModifier)
    m = win.model
    key = Qt.Key
    steps = {key.Key_Right: 10 if shift else 1, key.Key_Left: -10 if shift else -1,
             key.Key_PageDown: round(m.fps), key.Key_PageUp: -round(m.fps)}  # fmt: skip
    if k in steps:
        win.pause()
        win.show_frame(m.step(steps[k]))
    elif k in (key.Key_Home, key.Key_End):
        win._jump(m.first if k == key.Key_Home else m.last)
    elif k == key.Key_Space:
        if win.direction:
            win.pause()
        else:
            win.play(1)
    elif k == key.Key_R:
        if win.direction == -1:
            win.pause()
        else:
            win.play(-1)
    elif k in SPEED_KEYS and not mods & Qt.KeyboardModifier.ControlModifier:
        win.set_speed(SPEED_KEYS.index(k))
    elif k == key.Key_L:
        win.loop = not win.loop
        win.show_frame(m.position)
    elif k in (key.Key_O, key.Key_A, key.Key_F):
        win.mark({key.Key_O: "onset", key.Key_A: "apex", key.Key_F: "offset"}[k])
    elif k in (key.Key_Return, key.Key_Enter):
        win.commit()
    elif k == key.Key_Escape:
        win.cancel()
    elif mods & Qt.KeyboardModifier.ControlModifier and k in EMOTION_KEYS:
        win.emotion.setCurrentIndex(EMOTION_KEYS.index(k))
        win._labels(emotion=win.emotion.currentText())
    elif k in (key.Key_U, key.Key_T, key.Key_G):
        field = {key.Key_U: win.aus, key.Key_T: win.notes, key.Key_G: win.goto}[k]
        field.setFocus()
        field.selectAll()
    elif k in (key.Key_N, key.Key_M, key.Key_J):
        find = {key.Key_N: m.next_candidate, key.Key_M: m.next_marker,
                key.Key_J: m.next_annotation}[k]  # fmt: skip
        target = find(not shift)
        if target is None:
            win.say("nothing further that way")
        else:
            win._jump(target)
    else:
        return False
    return True
