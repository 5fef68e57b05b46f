module ffibench/peers/go/runtime

go 1.19
