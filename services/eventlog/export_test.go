package eventlog

// MsgIDBase exposes msgIDBase to the tests.
var MsgIDBase = msgIDBase
