-- mdman.lua: a Markdown document as a man page (troff), so that warden-policy(5) says
-- what docs/policy.md says (spec/help_spec.lua compares them).
--   lua5.4 tools/mdman.lua docs/policy.md NAME SECTION "TITLE" "ONE LINE" > NAME.SECTION
-- Headings, paragraphs, fenced code, lists and pipe tables; inline `code` in bold,
-- **bold**, links as their text.
local src, name, section, title, oneline = arg[1], arg[2], arg[3], arg[4], arg[5]
assert(src and name and section, "usage: mdman.lua FILE NAME SECTION TITLE ONELINE")
local f = assert(io.open(src))
local text = f:read("a")
f:close()

local out = {}
local function emit(s) out[#out + 1] = s end

-- troff-safe text: backslashes and dashes escaped, then inline Markdown as fonts
local function inline(s)
  s = s:gsub("\\", "\\e"):gsub("%-", "\\-")
  s = s:gsub("%[([^%]]+)%]%(([^)]+)%)", "%1")
  s = s:gsub("%*%*(.-)%*%*", "\\fB%1\\fR")
  s = s:gsub("`([^`]*)`", "\\fB%1\\fR")
  if s:match("^[.']") then s = "\\&" .. s end
  return s
end

emit(('.TH %s %s "" "warden" "%s"'):format(name:upper(), section, title or ""))
emit(".SH NAME")
emit(("%s \\- %s"):format(name, inline(oneline or title or name)))

local lines = {}
for line in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
local i, first = 1, true
while i <= #lines do
  local line = lines[i]
  local level, head = line:match("^(#+)%s+(.*)$")
  if level then
    if #level == 1 and first then
      emit(".SH DESCRIPTION")
    else
      emit((#level <= 2 and ".SH " or ".SS ") .. inline(head):upper())
    end
    first = false
    i = i + 1
  elseif line:match("^```") then
    emit(".PP")
    emit(".nf")
    i = i + 1
    while i <= #lines and not lines[i]:match("^```") do
      local l = lines[i]:gsub("\\", "\\e"):gsub("%-", "\\-")
      if l:match("^[.']") then l = "\\&" .. l end
      emit(l)
      i = i + 1
    end
    emit(".fi")
    i = i + 1
  elseif line:match("^|") then
    local header = true
    while i <= #lines and lines[i]:match("^|") do
      local cells = {}
      for c in lines[i]:gsub("\\|", "\1"):gmatch("|([^|]*)") do
        cells[#cells + 1] = (c:gsub("\1", "|"):gsub("^%s+", ""):gsub("%s+$", ""))
      end
      if cells[#cells] == "" then cells[#cells] = nil end
      if not header and not lines[i]:match("^|[%s%-:|]+$") then
        emit(".TP")
        emit(inline(cells[1] or ""))
        local rest = {}
        for k = 2, #cells do rest[#rest + 1] = cells[k] end
        emit(inline(#rest > 1 and ("(" .. rest[1] .. ") " .. table.concat(rest, " ", 2)) or (rest[1] or "")))
      end
      header = false
      i = i + 1
    end
    emit(".PP")
  elseif line:match("^%s*[-*] ") then
    emit(".IP \\(bu 2")
    local item = { (line:gsub("^%s*[-*] ", "")) }
    i = i + 1
    while i <= #lines and lines[i]:match("^%s%s+%S") and not lines[i]:match("^%s*[-*] ") do
      item[#item + 1] = (lines[i]:gsub("^%s+", ""))
      i = i + 1
    end
    emit(inline(table.concat(item, " ")))
  elseif line:match("^%s*$") then
    i = i + 1
  else
    emit(".PP")
    local para = { line }
    i = i + 1
    while i <= #lines and not lines[i]:match("^%s*$") and not lines[i]:match("^#+%s") and not lines[i]:match("^|")
      and not lines[i]:match("^```")
      and not lines[i]:match("^%s*[-*] ") do
      para[#para + 1] = lines[i]
      i = i + 1
    end
    emit(inline(table.concat(para, " ")))
  end
end
emit(".SH SEE ALSO")
emit("warden(1)")
io.write(table.concat(out, "\n"), "\n")
