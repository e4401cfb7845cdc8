package journal

// MsgIDBase exposes msgIDBase to the tests.
var MsgIDBase = msgIDBase
