// Package proto holds Linkway's schemas: the journey events (protobuf,
// under linkway/) and the OpenAPI document of the JSON routes, embedded so
// the hub serves the very file that is reviewed.
package proto

import _ "embed"

// OpenAPI is the OpenAPI 3 document of Linkway's JSON routes (openapi.yaml).
//
//go:embed openapi.yaml
var OpenAPI []byte
