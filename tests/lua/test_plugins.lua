-- test_plugins.lua - user-written neighborhoods and acceptance rules are
-- checked when the optimizer is built (the required method, hooks that are
-- not functions, misspelt hook names with did-you-mean, a hook of the other
-- kind), what they return at every step (a move that is not a number, an
-- `accepted` that is not a boolean, an objective that is not a number: an
-- error naming the piece and the method), and their state() through a
-- checkpoint's round trip before the first step. The pieces of the examples
-- and every built-in piece pass.
local T = dofile("tests/lua/testlib.lua")
local sg = sgdsa or require "sgdsa"
local optim = sg.optim
local search = require "sgdsa.search"
local SM = dofile("tests/lua/search_models.lua")

local function step_fn(ctx)
  ctx.trial:add_scaled_(ctx.w, -0.1, ctx.g)
  return 0.1
end

local function nb(t)
  t.propose = t.propose or function(_, ctx) return step_fn(ctx) end
  return t
end

-- One step of a tiny least-squares problem with `opt`.
local function one_step(opt, objective)
  local m = SM.linreg(3)
  local X, y = SM.regression(8, 3, 0, sg.Generator(1))
  local s = search.new{model = m, criterion = SM.mse(), optim = opt, objective = objective}
  s:epoch_start(1)
  return s:step(X, y), s
end

T.test("the required method: missing, or misspelt", function()
  T.raises(function()
    optim.optimizer{neighborhood = {name = "mine", proposal = step_fn}, acceptance = optim.greedy{}}
  end, "optim.optimizer: neighborhood 'mine': a neighborhood has no propose(self, ctx) method " ..
       "(it has proposal: a misspelt propose?)")
  T.raises(function()
    optim.optimizer{neighborhood = step_fn, acceptance = {name = "rule", decied = function() end}}
  end, "acceptance 'rule': an acceptance rule has no decide(self, ctx, f_w, f_trial) method (it has decied")
  T.raises(function() optim.optimizer{neighborhood = step_fn} end, "optim.optimizer: no acceptance rule")
  T.raises(function() optim.optimizer{acceptance = optim.greedy{}} end, "optim.optimizer: no neighborhood")
  T.raises(function() optim.optimizer{neighborhood = 3, acceptance = optim.greedy{}} end,
           "a neighborhood must be a function(ctx) or a table with propose(self, ctx), got number")
end)

T.test("hooks: misspelt names, not functions, the other kind's", function()
  T.raises(function()
    optim.optimizer{neighborhood = nb{name = "tabu", epoch_ned = function() end}, acceptance = optim.greedy{}}
  end, "neighborhood 'tabu': unknown hook \"epoch_ned\" (the neighborhood hooks: propose, accepted, " ..
       "outcome, epoch_start, epoch_end, state, set_state); did you mean 'epoch_end'?")
  T.raises(function()
    optim.optimizer{neighborhood = step_fn, acceptance = optim.greedy{},
                    objective = 7}
  end, "objective must be")
  T.raises(function()
    optim.optimizer{neighborhood = step_fn,
                    acceptance = {name = "r", decide = function() return true end, temprature = function() end}}
  end, "did you mean 'temperature'?")
  T.raises(function()
    optim.optimizer{neighborhood = nb{name = "n", outcome = 3}, acceptance = optim.greedy{}}
  end, "neighborhood 'n': outcome must be a function (self, ...), got number")
  T.raises(function()
    optim.optimizer{neighborhood = nb{name = "n", needs_grad = "no"}, acceptance = optim.greedy{}}
  end, "neighborhood 'n': needs_grad must be true or false, got no")
  T.raises(function()
    optim.optimizer{neighborhood = nb{name = "n", decide = function() end}, acceptance = optim.greedy{}}
  end, "decide is a method of an acceptance rule, not of a neighborhood")
  -- helpers of its own are the piece's business
  local o = optim.optimizer{neighborhood = nb{name = "n", helper = function() end, tabu = {}},
                            acceptance = optim.greedy{}}
  T.eq(o.neighborhood.name, "n", "a piece with helper functions and memory fields builds")
end)

T.test("what the pieces return, checked at the step", function()
  local lazy = optim.optimizer{neighborhood = nb{name = "lazy", propose = function(_, ctx)
    ctx.trial:copy(ctx.w)                                   -- forgot `return eta`
  end}, acceptance = optim.greedy{}}
  T.raises(function() one_step(lazy) end,
           "search: neighborhood 'lazy': propose(self, ctx) returned nothing; it must return a number")
  local stringy = optim.optimizer{neighborhood = function(ctx) step_fn(ctx); return "0.1" end,
                                  acceptance = optim.greedy{}}
  local err = T.raises(function() one_step(stringy) end, 'returned the string "0.1"')
  T.check(err:find("neighborhood function (", 1, true) and err:find("test_plugins.lua:%d+%)"), "names where: " .. err)
  local undecided = optim.optimizer{neighborhood = step_fn,
                                    acceptance = {name = "maybe", decide = function() end}}
  T.raises(function() one_step(undecided) end,
           "search: acceptance 'maybe': decide(self, ctx, f_w, f_trial) returned nothing; it must return true or false")
  local oneish = optim.optimizer{neighborhood = step_fn,
                                 acceptance = function() return 1, 0.5 end}
  T.raises(function() one_step(oneish) end, "returned a number (1) and a number (0.5)")
  local bad_obj = optim.optimizer{neighborhood = step_fn, acceptance = optim.greedy{},
                                  objective = function() return "low" end}
  T.raises(function() one_step(bad_obj) end, 'search: the objective function returned the string "low", expected a number')
  local rec = one_step(optim.optimizer{neighborhood = step_fn, acceptance = optim.greedy{}})
  T.eq(rec.move, 0.1, "a good piece's move is logged")
end)

T.test("state() through a checkpoint's round trip before the first step", function()
  T.raises(function()
    one_step(optim.optimizer{neighborhood = nb{name = "fn_in_state", state = function()
      return {tabu = {1, 2}, pick = function() end}
    end}, acceptance = optim.greedy{}})
  end, "search: neighborhood 'fn_in_state': cannot store a function at state path 'state()/pick'")
  T.raises(function()
    one_step(optim.optimizer{neighborhood = step_fn, acceptance = {name = "num", decide = function() return true end,
                                                                    state = function() return 5 end}})
  end, "acceptance 'num': state() returned number, expected a table")
  local got
  local keeper = nb{name = "keeper", hist = {1, 2.5}, n = 3}
  function keeper.state(self) return {hist = self.hist, n = self.n, empty = {}} end
  function keeper.set_state(self, st) got = st; self.hist, self.n = st.hist, st.n end
  one_step(optim.optimizer{neighborhood = keeper, acceptance = optim.greedy{}})
  T.eq(got.n, 3, "set_state got the state back")
  T.eq(math.type(got.hist[1]), "float", "a list of mixed numbers comes back as floats, as from a checkpoint")
  T.eq(got.empty, nil, "an empty table comes back absent, as from a checkpoint")
  T.raises(function()
    one_step(optim.optimizer{neighborhood = nb{name = "picky", state = function() return {} end,
                                               set_state = function(_, st) assert(st.v, "no v") end},
                             acceptance = optim.greedy{}})
  end, "neighborhood 'picky': set_state() of its own state() failed")
end)

T.test("the examples' pieces and every built-in piece pass", function()
  for _, script in ipairs{"experiments/example_tabu_neighborhood.lua", "experiments/example_record_to_record.lua"} do
    local exp = dofile(script)
    local rec = one_step(exp.optim:with{})
    T.eq(type(rec.move), "number", script)
  end
  local pieces = {
    optim.sgdsa{H = {0.1}}, optim.sgd{lr = 0.1}, optim.ssa{eps = 0.01},
    optim.optimizer{neighborhood = optim.momentum{H = {{0.1, 0.9}}}, acceptance = optim.threshold{tau0 = 1}},
    optim.optimizer{neighborhood = optim.nesterov{H = {{0.1, 0.9}}}, acceptance = optim.late_acceptance{L = 3}},
    optim.optimizer{neighborhood = optim.best_of_k{k = 2, H = {0.1, 0.05}}, acceptance = optim.always{}},
    optim.optimizer{neighborhood = optim.random_direction{eps = 0.01}, acceptance = optim.metropolis{}},
  }
  for _, o in ipairs(pieces) do
    local rec = one_step(o)
    T.eq(type(rec.move), "number", o:describe())
  end
end)

T.done()
