"""A real Debian 12 VM standing for the VPS: image build, boot, SSH (the test bed's "host").

    recipe.py   pure: package list, recipe hash, qemu / qemu-img / kernel command lines, addresses
    image.py    I/O: ``build()`` debootstraps and caches the image under ``<cache>/vm/<sha>/``
    machine.py  I/O: ``up()`` / ``down()`` / ``Vm.ssh()``: a qemu (TCG) guest on a bridge in a
                network namespace of its own (the VM's "internet" segment)

Why a VM: the kernel WireGuard backend, systemd units and reboots need a real kernel
and init, which the machines running the tests do not give inside a namespace.
"""
