"""IAM as a test: every AWS call a function makes in the test suite is checked against that
function's policies in the synthesized template (``capture`` → ``needs`` → ``policy``).
A call its role does not allow fails the test that made it, naming the call."""
