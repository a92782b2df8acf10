"""The MQTT link to headquarters (PROTOCOL.md v1); talks to the store through a narrow interface."""
