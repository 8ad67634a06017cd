//! The I/O thread of one virtio-mmio device: it sleeps on the device's notify eventfd (which
//! KVM signals itself through KVM_IOEVENTFD when a vCPU writes QueueNotify, so the vCPU
//! never leaves the kernel for it), serves the queues under the transport's lock, and raises
//! the device's interrupt through its irqfd. A device with a descriptor of its own (net's
//! tap) has it polled too, while the device offers it ([`MmioTransport::poll_fd`]): the tap
//! is left alone while the receive queue has no buffers, so a readable tap cannot make the
//! thread spin. Dropping the [`Worker`] stops and joins it.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use vmm_sys_util::eventfd::EventFd;

use super::mmio::MmioTransport;

/// A running device thread.
pub struct Worker {
    stop: EventFd,
    thread: Option<JoinHandle<()>>,
}

fn lock(m: &Mutex<MmioTransport>) -> std::sync::MutexGuard<'_, MmioTransport> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Worker {
    /// Starts the thread `name` for `transport`, woken by `notify`, interrupting through
    /// `irq`.
    pub fn spawn(
        name: String,
        transport: Arc<Mutex<MmioTransport>>,
        notify: EventFd,
        irq: EventFd,
    ) -> std::io::Result<Worker> {
        let stop = EventFd::new(libc::EFD_CLOEXEC)?;
        let stop_thread = stop.try_clone()?;
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            crate::devices::console::block_all_signals();
            crate::sandbox::apply(crate::sandbox::Role::Io);
            serve(&transport, &notify, &stop_thread, &irq);
        })?;
        Ok(Worker {
            stop,
            thread: Some(thread),
        })
    }
}

fn serve(transport: &Mutex<MmioTransport>, notify: &EventFd, stop: &EventFd, irq: &EventFd) {
    use std::os::unix::io::AsRawFd;
    let pollfd = |fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // The device's descriptor is asked for anew each time: the queues may have run out.
        let mut fds = [
            pollfd(notify.as_raw_fd()),
            pollfd(stop.as_raw_fd()),
            pollfd(-1),
        ];
        let count = match lock(transport).poll_fd() {
            Some(fd) => {
                fds[2] = pollfd(fd);
                3
            }
            None => 2,
        };
        // SAFETY: `fds` holds `count` valid pollfds for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), count as libc::nfds_t, -1) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if fds[1].revents != 0 {
            return;
        }
        let notified = fds[0].revents & libc::POLLIN != 0;
        if notified {
            // The count is not needed: every wakeup serves every queue.
            let _ = notify.read();
        }
        // A full counter only means the interrupt is pending already.
        if (notified || fds[2].revents != 0) && lock(transport).service_queues() {
            let _ = irq.write(1);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.stop.write(1);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
