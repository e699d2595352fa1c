"""The Rig tab's parts: the edited settings file, its check, and one box per part of the rig.

:class:`app.gui.rig_panel.RigPanel` composes them: the boxes edit the file
(:mod:`.edited_file`), the checker checks it as a whole (:mod:`.checker`), the summary box says
what Start will run (:mod:`.summary_box`).
"""
