package auth

import "errors"

// Sentinel errors. The api package maps them to gRPC codes and HTTP
// statuses (api.RegisterClass): ErrUnauthenticated is Unauthenticated /
// 401, ErrPermissionDenied is PermissionDenied / 403.
var (
	// ErrUnauthenticated reports a request without valid credentials:
	// none given, a malformed, unknown, expired or revoked token, or a
	// client certificate that maps to no principal.
	ErrUnauthenticated = errors.New("auth: unauthenticated")
	// ErrPermissionDenied reports an authenticated caller whose roles
	// lack the permission a request needs; the message names it.
	ErrPermissionDenied = errors.New("auth: permission denied")
)

// DeniedError is an ErrPermissionDenied naming the missing permission.
type DeniedError struct {
	Principal string
	Missing   Permission
}

func (e *DeniedError) Error() string {
	return "auth: permission denied: " + e.Principal + " lacks permission \"" + e.Missing.String() + "\""
}

// Unwrap makes errors.Is(err, ErrPermissionDenied) true.
func (e *DeniedError) Unwrap() error { return ErrPermissionDenied }
