package fieldcrypt

import "errors"

// ErrWrongKey reports a wrapped key that no configured master key (or a
// ciphertext that no stored key) opens: the node was started with the
// wrong AUDIT_ENCRYPTION_KEY, or an old master key was dropped too soon.
var ErrWrongKey = errors.New("fieldcrypt: no configured key opens this data")
