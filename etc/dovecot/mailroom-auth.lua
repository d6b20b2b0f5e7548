-- Dovecot 2.4 (Debian 13) has no checkpassword driver: this Lua passdb and
-- userdb ask mailroom's checkpassword program the question Dovecot 2.3
-- asks it, so that IMAP logins still go through mailroom's one login check.
--
-- Installed by `make install` as /usr/share/mailroom/dovecot/mailroom-auth.lua.
-- Needs the package dovecot-auth-lua and Lua 5.2 or later (io.popen's
-- close must return the exit status).  Written against Dovecot 2.4's
-- documented Lua API and settings names; NOT run by mailroom's tests (the
-- test machine has Dovecot 2.3).  In dovecot.conf (2.4 syntax):
--
--   passdb lua {
--     lua_file = /usr/share/mailroom/dovecot/mailroom-auth.lua
--   }
--   userdb lua {
--     lua_file = /usr/share/mailroom/dovecot/mailroom-auth.lua
--   }
--
-- plus the rest of 99-mailroom.conf (username translation, mbox locks,
-- mail_privileged_group, the Spam folder) in 2.4's syntax.

local PROGRAM = "/usr/libexec/mailroom/checkpassword"

-- Run the program with the request on its descriptor 3 (the shell makes
-- the pipe this script writes to descriptor 3) and env(1) as the reply
-- program: its output, the answer's variables (never the password), goes
-- to a private temporary file.  Returns the variables and the exit code.
local function ask(user, password, lookup)
  if user:find("[%z\n]") or password:find("%z") then
    return {}, 1
  end
  local out = os.tmpname()
  local cmd = "exec 3<&0 </dev/null >" .. out .. "; "
    .. (lookup and "AUTHORIZED=1 " or "") .. "exec " .. PROGRAM .. " /usr/bin/env"
  local p = io.popen(cmd, "w")
  p:write(user, "\0", password, "\0", "\0")
  local _, _, code = p:close()
  local vars = {}
  local f = io.open(out)
  if f then
    for line in f:lines() do
      local k, v = line:match("^([%w_]+)=(.*)$")
      if k then
        vars[k] = v
      end
    end
    f:close()
  end
  os.remove(out)
  return vars, code
end

-- The 2.3 userdb fields in 2.4's names: mail_location became mail_driver,
-- mail_path and mail_inbox_path; a quota_rule a quota_storage_size.
local function userdb_fields(vars)
  local f = { uid = vars.userdb_uid, gid = vars.userdb_gid, home = vars.HOME }
  local mail = vars.userdb_mail or ""
  local root, inbox = mail:match("^mbox:([^:]+):INBOX=(.+)$")
  if root then
    f.mail_driver, f.mail_path, f.mail_inbox_path = "mbox", root, inbox
  else
    f.mail_driver, f.mail_path = "maildir", mail:match("^maildir:(.+)$")
  end
  local bytes = (vars.userdb_quota_rule or ""):match("storage=(%d+)B")
  if bytes and bytes ~= "0" then
    f.quota_storage_size = bytes
  end
  return f
end

function auth_passdb_verify(req, password)
  local vars, code = ask(req.user, password, false)
  if code == 0 and vars.USER then
    local fields = { user = vars.USER }
    for k, v in pairs(userdb_fields(vars)) do
      fields["userdb_" .. k] = v
    end
    return dovecot.auth.PASSDB_RESULT_OK, fields
  elseif code == 1 then
    -- A wrong password and an unknown login alike.
    return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, ""
  end
  return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, ""
end

function auth_userdb_lookup(req)
  local vars, code = ask(req.user, "", true)
  if code == 0 and vars.AUTHORIZED == "2" then
    return dovecot.auth.USERDB_RESULT_OK, userdb_fields(vars)
  elseif code == 3 then
    return dovecot.auth.USERDB_RESULT_USER_UNKNOWN, ""
  end
  return dovecot.auth.USERDB_RESULT_INTERNAL_FAILURE, ""
end
