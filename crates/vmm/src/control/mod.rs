//! The control plane: the QMP server on a Unix socket, turning requests into commands for
//! the VMM thread and VMM events into QMP events.
