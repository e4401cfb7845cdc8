package websession

// SignForTest signs a session id as s would sign its cookie.
func SignForTest(s *Sessions, id string) string { return s.sign(id) }
