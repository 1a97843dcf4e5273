"""Live kernels: the kernels people run in JupyterLab, Notebook 7, JupyterHub, nbclient and VS Code.

A *supervisor* (the ``nbmedic-provisioner`` kernel provisioner inside the Jupyter server, or
``nbmedic kernel-wrapper`` for clients that spawn argv themselves) samples the kernel's process tree,
guards its memory, and turns a death into an incident record; a stdlib-only *agent* inside the kernel
records the running cell and shows the cause of the previous death in the notebook.  ``paths`` is the
contract between them (folders, file names, record formats).
"""
