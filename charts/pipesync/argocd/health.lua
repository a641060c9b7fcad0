-- Argo CD health check for every pipesync.io kind (Run, Pipeline, RecurringRun, Experiment,
-- GitSource): each is set under its own argocd-cm key
-- resource.customizations.health.pipesync.io_<Kind>. All kinds write the same conditions
-- (operator/pipesync/controllers/conditions.py set_health), so one script reads them all,
-- as kstatus does: Stalled=True -> Degraded, Reconciling=True or no status for this
-- generation yet -> Progressing, Ready=True -> Healthy.
local hs = {status = "Progressing", message = "Waiting for the operator"}
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local gen = obj.metadata.generation
if gen ~= nil and obj.status.observedGeneration ~= nil and obj.status.observedGeneration < gen then
  return hs
end
local by = {}
for _, c in ipairs(obj.status.conditions) do
  by[c.type] = c
end
local function on(t) return by[t] ~= nil and by[t].status == "True" end
local function msg(t) return by[t].message or by[t].reason or t end
if on("Stalled") then
  hs.status = "Degraded"; hs.message = msg("Stalled")
elseif on("Reconciling") then
  hs.status = "Progressing"; hs.message = msg("Reconciling")
elseif on("Ready") then
  hs.status = "Healthy"; hs.message = msg("Ready")
end
return hs
