"""The names of ccserver's dialplan contexts, the same on both PBX kinds.

They are the contract between the code and ``dialplans/asterisk/extensions.conf`` /
``dialplans/freeswitch/ccserver.xml`` (and the simulators that imitate those dialplans).
"""

#: where inbound calls enter and run the IVR
INBOUND_CONTEXT = "ccserver-inbound"
#: music on hold while a caller waits for an agent
WAIT_CONTEXT = "ccserver-wait"
#: dials the agent ccserver picked (Asterisk)
CONNECT_CONTEXT = "ccserver-connect"
#: runs ChanSpy for a supervisor (Asterisk)
SPY_CONTEXT = "ccserver-spy"
#: dials a transferred caller's external number
TRANSFER_CONTEXT = "ccserver-transfer"
#: dials a callback's number from the agent's answered channel
CALLBACK_CONTEXT = "ccserver-callback"
#: an escalation step's overflow: voicemail, or the "we will call you back" prompt
VOICEMAIL_CONTEXT = "ccserver-voicemail"
CALLBACK_CONFIRM_CONTEXT = "ccserver-callback-confirm"
