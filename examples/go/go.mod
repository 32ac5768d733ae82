module voxide-example

go 1.19
