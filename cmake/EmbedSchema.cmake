# embed_schema(DIR OUT): writes OUT, a C++ file defining
# strata::schema_migrations(), which returns every DIR/NNN_*.sql in order.
function(embed_schema dir out)
  file(GLOB files RELATIVE ${dir} ${dir}/[0-9][0-9][0-9]_*.sql)
  list(SORT files)
  set(body "")
  foreach(f ${files})
    file(READ ${dir}/${f} sql)
    string(REGEX MATCH "^[0-9]+" num ${f})
    math(EXPR num "${num}")
    set(body "${body}    {${num}, \"${f}\", R\"strata_sql(${sql})strata_sql\"},\n")
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${dir}/${f})
  endforeach()
  set(content "// Generated from schema/*.sql by cmake/EmbedSchema.cmake.\n"
              "#include \"storage/migrations.h\"\n"
              "namespace strata {\n"
              "const std::vector<Migration>& schema_migrations() {\n"
              "  static const std::vector<Migration> all = {\n${body}  };\n"
              "  return all;\n}\n}  // namespace strata\n")
  string(CONCAT content ${content})
  file(WRITE ${out}.tmp "${content}")
  file(COPY_FILE ${out}.tmp ${out} ONLY_IF_DIFFERENT)
endfunction()
