"""``ykt demo``: the real daemon wiring on simulated hardware, narrated: a door, a canteen and a
shop till, faces and a sync round trip with the reference HQ. A development tool; the appliance
neither ships nor imports it."""
