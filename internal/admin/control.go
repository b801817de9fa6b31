package admin

import (
	"errors"
	"strings"
)

// Errors a Controller wraps so that the API answers with the right status:
// ErrNotFound is 404 (unknown service, backend or group), ErrInvalid 400.
var (
	ErrNotFound = errors.New("not found")
	ErrInvalid  = errors.New("invalid request")
)

// NewBackend is the body of POST /api/v1/services/{service}/backends.
type NewBackend struct {
	Address string `json:"address"`
	// Weight is 0-65535; nil takes the default, 1.
	Weight *int `json:"weight,omitempty"`
	Backup bool `json:"backup"`
}

// WeightRequest is the body of PUT .../backends/{address}/weight.
type WeightRequest struct {
	Weight *int `json:"weight"`
}

// ReloadResult is the body of a successful POST /api/v1/reload.
type ReloadResult struct {
	OK         bool   `json:"ok"`
	ConfigHash string `json:"config_hash"`
}

// RejectedError is a reload that was refused, with every problem found;
// the running config is unchanged. The API answers 422 with the list.
type RejectedError struct {
	Errors []string `json:"errors"`
}

func (e *RejectedError) Error() string {
	return "config rejected, running config unchanged:\n" + strings.Join(e.Errors, "\n")
}
