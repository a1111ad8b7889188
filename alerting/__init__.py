"""Clinical rules, alert lifecycle, notifiers, replay."""
