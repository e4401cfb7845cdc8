package websession

import (
	"errors"
	"net/http"
	"strings"
)

// Router is where an app's routes go; *api.Server is one.
type Router interface {
	HandlePublic(pattern string, h http.Handler)
}

// Mount adds the app's sign-in and sign-out forms' routes and its static
// files (Path+"static/") to r. The app adds its pages, each through Page.
func (s *Sessions) Mount(r Router) {
	r.HandlePublic("POST "+s.cfg.SignInPath, http.HandlerFunc(s.signIn))
	r.HandlePublic("POST "+s.cfg.SignOutPath, http.HandlerFunc(s.signOut))
	r.HandlePublic("GET "+s.site.Static, http.HandlerFunc(s.static))
}

// Handler serves one page or form of an app to a signed-in browser. An
// error it returns is shown as a page (Fail).
type Handler func(w http.ResponseWriter, r *http.Request, se Session) error

// Page serves h to signed-in browsers only, with the security headers.
// Not signed in, the browser is shown the sign-in form at Path, and is
// sent there from anywhere else. A POST's form is read (bounded by
// FormLimit) and must carry the session's CSRF token, or nothing is done.
func (s *Sessions) Page(h Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.SecurityHeaders(w)
		se, ok, err := s.Get(r)
		if err != nil {
			s.sessionsDown(w, err)
			return
		}
		if !ok {
			if (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.Path == s.cfg.Path {
				s.signInForm(w, r, http.StatusOK, "")
			} else {
				http.Redirect(w, r, s.cfg.Path, http.StatusSeeOther)
			}
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.FormLimit)
			if err := r.ParseForm(); err != nil {
				s.message(w, http.StatusBadRequest, "The form could not be read", "Go back and try again.", &se)
				return
			}
			if !se.CheckCSRF(r.PostForm.Get("csrf")) {
				// A form from an old page, or posted from another site.
				s.message(w, http.StatusForbidden, "The form was out of date", "Nothing was changed. Go back, reload the page and try again.", &se)
				return
			}
		}
		if err := h(w, r, se); err != nil {
			s.Fail(w, r, &se, err)
		}
	})
}

// signIn serves the sign-in form's POST (fields key and csrf): signed in,
// the browser goes to Path; refused, it is shown the form again with the
// refusal and its status.
func (s *Sessions) signIn(w http.ResponseWriter, r *http.Request) {
	s.SecurityHeaders(w)
	r.Body = http.MaxBytesReader(w, r.Body, signInFormLimit)
	if err := r.ParseForm(); err != nil {
		s.signInForm(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	key := strings.TrimSpace(r.PostForm.Get("key"))
	if key == "" {
		s.signInForm(w, r, http.StatusBadRequest, "Enter your key to sign in.")
		return
	}
	se, err := s.SignIn(w, r, key, r.PostForm.Get("csrf"))
	if err != nil {
		switch {
		case errors.Is(err, ErrThrottled):
			s.count("throttled")
		case errors.Is(err, ErrUnknownKey):
			s.count("unknown_key")
		case errors.Is(err, ErrWrongKind):
			s.count("wrong_kind")
		}
		status, msg := s.Refusal(err)
		if status >= 500 {
			s.cfg.Log.Error("web sign-in failed", "app", s.cfg.App, "err", err)
		}
		s.signInForm(w, r, status, msg)
		return
	}
	s.count("ok")
	s.cfg.Log.Info("web sign-in", "app", s.cfg.App, "org", se.Principal.OrgID, "key_id", se.Principal.KeyID)
	http.Redirect(w, r, s.cfg.Path, http.StatusSeeOther)
}

func (s *Sessions) count(result string) {
	if s.cfg.OnSignIn != nil {
		s.cfg.OnSignIn(result)
	}
}

// signOut serves the sign-out form's POST: with the session's CSRF token
// it ends the session; either way the browser goes to Path (a forged
// sign-out changes nothing and says nothing).
func (s *Sessions) signOut(w http.ResponseWriter, r *http.Request) {
	s.SecurityHeaders(w)
	r.Body = http.MaxBytesReader(w, r.Body, signInFormLimit)
	se, ok, err := s.Get(r)
	if err != nil {
		s.sessionsDown(w, err)
		return
	}
	if ok && r.ParseForm() == nil && se.CheckCSRF(r.PostForm.Get("csrf")) {
		if err := s.SignOut(w, r, se); err != nil {
			s.cfg.Log.Error("web sign-out failed", "app", s.cfg.App, "err", err)
			s.message(w, http.StatusServiceUnavailable, "Please try again in a moment", "Signing out failed.", &se)
			return
		}
	}
	http.Redirect(w, r, s.cfg.Path, http.StatusSeeOther)
}

// sessionsDown answers a request when the sessions cannot be read.
func (s *Sessions) sessionsDown(w http.ResponseWriter, err error) {
	s.cfg.Log.Error("web sessions unavailable", "app", s.cfg.App, "err", err)
	s.message(w, http.StatusServiceUnavailable, "Please try again in a moment", "Sign-in is not available just now.", nil)
}
