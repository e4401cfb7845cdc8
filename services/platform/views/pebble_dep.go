package views

import _ "github.com/cockroachdb/pebble/v2"
