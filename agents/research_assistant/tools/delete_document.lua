-- delete_document: destructive, admin only by policy. It records the request in the
-- result; the corpus itself is shipped read-only with the example.
return warden.tool {
  name = "delete_document",
  description = "Delete a document from the knowledge base (admin only)",
  parameters = {
    type = "object", required = { "id" }, additionalProperties = false,
    properties = { id = { type = "string", pattern = "^doc-[0-9]+$" } },
  },
  run = function(args, ctx)
    ctx:log { action = "delete_document", id = args.id }
    return { deleted = args.id }
  end,
}
