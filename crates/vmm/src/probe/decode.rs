//! Decodes the probe guest's serial dump (see guest/probe) into what the guest saw.
