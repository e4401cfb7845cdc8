// Package natsconf holds the NATS configuration Linkway deploys: the
// accounts, users and permissions of accounts.conf (included by every
// cluster node), and the node files beside it. The embedded server of
// `linkway hub` applies accounts.conf too, so one set of permissions is
// tested and deployed.
package natsconf

import _ "embed"

// Accounts is accounts.conf: every user's password is a variable,
// $LW_NATS_PASSWORD_<USER>, which the server resolves from the config
// (the embedded server defines them) or the environment (a cluster node).
//
//go:embed accounts.conf
var Accounts string
