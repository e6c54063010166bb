"""Operations: systemd notify, the control socket, SIGHUP reload, the status record,
logging, and the read-only view of a running agent they share."""
