"""Model rollout to a fleet over MQTT (docs/fleet.md), torch-free so the device and the controller share it:
`protocol` (topics, payloads, the state machine), `signing` (Ed25519 over the release manifest), `chunks`
(a bundle as a deterministic archive in numbered chunks), `store` (models_dir/<sha256>/ on the device), `agent`
(the device's side, wired into `edge run`), `controller` and `waves` (`trainer fleet`)."""
