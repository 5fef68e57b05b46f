module ffibench/cgo

go 1.24
