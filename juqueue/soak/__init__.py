"""A chaos soak (`juqueue-soak`): resumable runs on a real JuQueue while a seeded schedule of faults
hits it, and a checker that proves the run lifecycle's invariants held (`juqueue.soak.checker`)."""
