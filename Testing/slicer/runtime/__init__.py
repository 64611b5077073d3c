"""Slicer-runtime harness: run the module's real widget under Slicer 5.12's own Python layer (vendored in
``vendor/``), with slicer-core for MRML and small stand-ins for the compiled Qt/CTK/qMRML classes.

Usage in a test::

    from runtime import slicer_runtime

    def test_panel():
        with slicer_runtime() as rt:
            widget = rt.make_module_widget()          # import, setup(), enter()
            widget.ui.seedSpinBox.value = 3
            assert widget._parameterNode.seed == 3
            assert not rt.messages("error")

API: :func:`install_runtime` / :func:`uninstall_runtime` / :func:`slicer_runtime`; on the runtime:
``make_module_widget``, ``enter``, ``exit``, ``close_scene``, ``unload``, ``messages``, ``clear_messages``,
``set_confirm_answer``, ``process_timers``, ``active_timers``, ``opened_urls``, ``progress_dialogs``,
``open_dicom_database``; module-level shortcuts below act on the installed runtime.
"""

# slicer-core's `slicer` package imports every module of every folder named `slicer` on sys.path, and pytest puts
# Testing/ on it: this package is then also imported as `slicer.runtime`. Define nothing public in that copy, so
# nothing leaks into the `slicer` namespace and the harness state exists once.
if not __name__.startswith("slicer."):
    from .harness import MODULE_DIR, VENDOR, Runtime, current, install_runtime, slicer_runtime, uninstall_runtime
    from .widgets import MessageRecord

    def make_module_widget(module_dir=None, name="SyntheticImaging", enter=True):  # noqa: ANN001, ANN201
        """Open the module in the installed runtime (see :meth:`Runtime.make_module_widget`)."""
        return current().make_module_widget(module_dir, name, enter)

    def messages(kind=None):  # noqa: ANN001, ANN201
        """Message boxes recorded so far (see :meth:`Runtime.messages`)."""
        return Runtime.messages(kind)

    def clear_messages():  # noqa: ANN201
        """Forget the recorded message boxes."""
        Runtime.clear_messages()

    def process_timers(rounds=1):  # noqa: ANN001, ANN201
        """Fire the active QTimers ``rounds`` times; returns how many fired."""
        return Runtime.process_timers(rounds)

    __all__ = ["install_runtime", "uninstall_runtime", "slicer_runtime", "current", "make_module_widget", "messages",
               "clear_messages", "process_timers", "Runtime", "MessageRecord", "VENDOR", "MODULE_DIR"]
