-- stats.lua: statistics for detectors (require "warden.stats"): the chi-square test
-- with its p-value from the regularised incomplete gamma function.
local M = {}

local huge = math.huge

local LANCZOS = { 0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
  -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
  1.5056327351493116e-7 }

local function log_gamma(x)
  if x < 0.5 then
    return math.log(math.pi / math.abs(math.sin(math.pi * x))) - log_gamma(1 - x)
  end
  x = x - 1
  local a, t = LANCZOS[1], x + 7.5
  for i = 1, 8 do
    a = a + LANCZOS[i + 1] / (x + i)
  end
  return 0.5 * math.log(2 * math.pi) + (x + 0.5) * math.log(t) - t + math.log(a)
end
M.log_gamma = log_gamma

-- Q(a, x): the regularised upper incomplete gamma function (a series below a + 1, a
-- continued fraction above)
local function gamma_q(a, x)
  if x <= 0 then
    return 1
  end
  local lead = -x + a * math.log(x) - log_gamma(a)
  if x < a + 1 then
    local ap, sum = a, 1 / a
    local del = sum
    for _ = 1, 10000 do
      ap = ap + 1
      del = del * x / ap
      sum = sum + del
      if math.abs(del) < math.abs(sum) * 1e-15 then
        break
      end
    end
    return math.max(0, 1 - sum * math.exp(lead))
  end
  local tiny = 1e-300
  local b = x + 1 - a
  local c, d = 1 / tiny, 1 / b
  local h = d
  for i = 1, 10000 do
    local an = -i * (i - a)
    b = b + 2
    d = an * d + b
    if math.abs(d) < tiny then d = tiny end
    c = b + an / c
    if math.abs(c) < tiny then c = tiny end
    d = 1 / d
    local del = d * c
    h = h * del
    if math.abs(del - 1) < 1e-15 then
      break
    end
  end
  return math.min(1, math.exp(lead) * h)
end
M.gamma_q = gamma_q

-- the chance of a chi-square statistic this large or larger with df degrees of freedom
function M.chi_square_p(stat, df)
  if df < 1 then
    return 1
  end
  if stat == huge then
    return 0
  end
  return gamma_q(df / 2, stat / 2)
end

-- Pearson's test of counts {option = n} against a uniform choice among options (a
-- list; options never chosen count 0). Returns stat, df, p, expected.
function M.chi_square_uniform(counts, options)
  local n, k = 0, #options
  for _, o in ipairs(options) do
    n = n + (counts[o] or 0)
  end
  if k < 2 or n == 0 then
    return 0, 0, 1, 0
  end
  local e = n / k
  local stat = 0
  for _, o in ipairs(options) do
    local d = (counts[o] or 0) - e
    stat = stat + d * d / e
  end
  return stat, k - 1, M.chi_square_p(stat, k - 1), e
end

return M
